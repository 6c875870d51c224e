"""The regression gate: two installs of gradbench timed against each other on one machine,
interleaved case by case (``gradbench ab``).

* :mod:`.worker`: one side, a process that imports its own gradbench and times blocks of
  calls on request;
* :mod:`.coordinator`: starts both workers, prepares every case on both (compile and warm-up,
  never timed), then times quads of blocks (ABBA or BAAB, at random) case after case, round
  after round, and saves both sides' blocks as result documents;
* :mod:`.stats`: the paired statistics and the decision, pure functions;
* :mod:`.profile`: the cases the gate times.
"""
