"""What sits above the SDK and calls it as a user would: the panel's reports, the demo, the
torchrun launcher."""
