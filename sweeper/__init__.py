"""The sweeper: requeues or fails runs whose lease expired (see __main__)."""
