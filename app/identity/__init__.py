"""Identity: tenants, API keys, members and tenant admins, devices, sessions, platform admins, audit."""
