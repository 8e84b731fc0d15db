"""Apache Kafka for firetape: a local single-node broker for development and tests
(`broker`), topics created and checked from topics.REGISTRY (`admin`), and their CLI (`cli`)."""
