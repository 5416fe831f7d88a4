"""The model folders: what a complete one holds (`store`) and how one gets there (`download`,
which tries the `hubs` one after the other and installs through `staging`; `cache_copy` reuses
a copy already in the user's hub caches; `progress` reports on both)."""
