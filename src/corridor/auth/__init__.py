"""Users, roles, API keys, web sessions, and the data scope each role may see."""
