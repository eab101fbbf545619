"""advx-counteract: inference-time defences of paper 004 and its baselines."""
