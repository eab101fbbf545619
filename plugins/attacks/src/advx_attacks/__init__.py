"""advx-attacks: the attacks the five papers use, batched and stateless."""
