"""HTTP plumbing shared by both front doors (api/ and web/): dependencies, cookies, middleware, SSE."""
