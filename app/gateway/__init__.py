"""waule-api, the gateway that holds the vendor keys: the client that calls it, the registry of
gateway instances and their health, the in-process sandbox, and the SSRF-guarded fetch of results."""
