"""The MO (modus operandi) repository: known bad-actor patterns, their links, and similarity search."""
