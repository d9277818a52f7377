"""Report scoping, org data and the query layer shared by routes and exports."""
