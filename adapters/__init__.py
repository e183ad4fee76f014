"""Built-in adapters (installed as sg_stability.adapters; registered through entry points)."""
