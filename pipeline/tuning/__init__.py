"""`kc tune`: Optuna searches over each model's declared space, and the studies they leave."""
