"""Google Cloud adapters: Firestore state store, Pub/Sub bus, CloudEvent decoding."""
