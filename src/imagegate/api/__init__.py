"""HTTP: the app factory, schemas, routes and the one error → HTTP mapping."""
