"""runners: model code in isolation (protocol, process runner, fair slots, hog policy)."""
