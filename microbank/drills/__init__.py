"""Tools that prove the bank under load and faults: traffic, the chaos drill, a throwaway broker."""
