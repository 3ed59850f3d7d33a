"""HTTP layer: dependencies, middleware, routers."""
