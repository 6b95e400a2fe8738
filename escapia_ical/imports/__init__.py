"""The other direction: the channels' own calendars, watched for bookings Escapia does not
know (config ``imports``).

``watch`` runs once per account after its feeds are published: it fetches the channel
exports that are due, reads them (``parse``: nights only, nothing of the guest), compares
them with what our feed shows (``conflicts``: echoes of our own feed, unsynced bookings,
double bookings) and keeps what it learned in the account's state (``book``).
"""
