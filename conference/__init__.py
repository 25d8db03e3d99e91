"""The live room at run time: its peers and their connections to the router, the clinical
session and the ECG relay, and the room events that others (the face, the recorder, the
streamer) subscribe to. Imports `sfu`, `rooms` and `clinical`; never `signaling`."""
