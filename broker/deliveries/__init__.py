"""The portal's read side of the data plane's own table (delivery records and counters),
and the few actions on deliveries (resend, test event)."""
