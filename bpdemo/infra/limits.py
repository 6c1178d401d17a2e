"""The ranges every number and size a user gives must lie in, in one place (docs/command_line.md lists them).

A value outside its range is a usage error (exit 2) that states the range, before any work is done. The
bounds keep a typing mistake (a width of 200,000, an image size of 20,000) from running for minutes and
then failing for memory; they are far above what the demos need.
"""

MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit: 0 to 4,294,967,295
MAX_THREADS = 256  # torch CPU threads
MAX_WIDTH = 65_536  # units in one layer
MAX_DEPTH = 200  # weight layers of one network (the gradients demo's grid)
MAX_PARAMETERS = 20_000_000  # weights and biases of one network (each kept ~8 times: 2 models,
# their gradients and optimizer states)
MAX_EPOCHS = 1_000_000
MAX_BATCH = 1_000_000
MAX_HOUSES = 1_000_000  # synthetic houses
MAX_IMAGE_SIZE = 256  # a folder's images are resized to N x N: 256 x 256 x 3 = 196,608 inputs
MAX_SOURCE_PIXELS = 89_478_485  # of one image file: Pillow's own limit against decompression bombs
MAX_NAME = 200  # characters of a class, feature or column name
MIN_DPI, MAX_DPI = 30, 600  # of png figures: a thumbnail to print quality
MAX_PROCESSES = 64  # of one data-parallel run started with --processes
