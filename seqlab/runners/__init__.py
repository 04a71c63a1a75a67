"""The shell's runners: whole jobs as plain functions over the pure core and the warehouse."""
