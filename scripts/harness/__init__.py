"""The benchmark, the soaks and the load generator, with the one process helper they and the
tests share (processes.py). They live in the checkout, next to server.py and worker.py which they
run, and are not part of the installed package; the fakes they drive are (notion_queue.testing).
"""
