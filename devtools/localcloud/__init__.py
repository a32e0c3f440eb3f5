"""Local stand-ins for the cloud pieces: emulators, functions-framework, Pub/Sub push, Eventarc."""
