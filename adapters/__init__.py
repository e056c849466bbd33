"""Platform adapters: translate native payloads to copss events and send copss output."""
