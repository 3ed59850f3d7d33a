// The mongodb service's health check (mongosh --file, as root). Idempotent: the first time it
// initiates the one-member replica set; afterwards it only reports. Healthy = this member is primary.
const name = process.env.MONGO_REPLICA_SET;
const host = process.env.MONGO_REPLICA_HOST;
let status;
try {
  status = rs.status();
} catch (error) {
  if (error.codeName !== "NotYetInitialized") {
    throw error;
  }
  rs.initiate({ _id: name, members: [{ _id: 0, host: host }] });
  print(`kovr: initiated replica set ${name} with ${host}`);
  status = rs.status();
}
const primary = status.members.some((member) => member.self && member.stateStr === "PRIMARY");
if (!primary) {
  quit(1);
}
