"""ISO 8583:1987 adapter on pyiso8583."""
