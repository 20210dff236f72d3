"""What every role shares; knows no domain."""
