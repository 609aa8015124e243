"""Assignment of requests to people and queues; queue membership and least-loaded auto-assignment."""
