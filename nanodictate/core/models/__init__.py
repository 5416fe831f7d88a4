"""The model folders: what a complete one holds (`store`) and how one gets there
(`download`: the hubs, or a copy already in the user's hub caches)."""
