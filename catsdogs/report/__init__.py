"""What the reports stage draws and writes: figures and the summary."""
