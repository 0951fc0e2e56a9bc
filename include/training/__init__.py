"""Training: features, point-in-time training sets, fitting, the gate against the champion, and when to train."""
