"""Training runs: the trainer, the records a run writes and reads back, and the pictures it draws."""
