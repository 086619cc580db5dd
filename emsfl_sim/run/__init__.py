"""Assembly: scenario -> schedule -> learning world -> strategies -> results; seeds; run directories."""
