"""Clock, errors, models, logs and metrics: what every part uses; imports nothing of Tocsin's."""
