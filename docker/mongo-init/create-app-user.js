// Runs once, when MongoDB initialises an empty data volume (docker-entrypoint-initdb.d), as root.
// The app gets its own user, limited to its own database, instead of the root account.
const dbName = process.env.MONGO_APP_DB;
const user = process.env.MONGO_APP_USERNAME;
const pwd = process.env.MONGO_APP_PASSWORD;
if (!dbName || !user || !pwd) {
  throw new Error("MONGO_APP_DB, MONGO_APP_USERNAME and MONGO_APP_PASSWORD must all be set");
}
// readWrite for the data, dbAdmin for the migrations (indexes, collection options).
db.getSiblingDB(dbName).createUser({
  user: user,
  pwd: pwd,
  roles: [
    { role: "readWrite", db: dbName },
    { role: "dbAdmin", db: dbName },
  ],
});
print(`kovr: created user ${user} for database ${dbName}`);
