"""Training engine: schedule, EMA, checkpoints, distributed set-up, logging and the trainer."""
