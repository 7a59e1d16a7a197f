"""Quality next to speed: eval requests mixed into each sweep point, scored after the point, and
priced per useful response. README "Quality" has the formulas; docs/architecture.md the modules."""
