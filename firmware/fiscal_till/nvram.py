"""Small durable key-value memory of the board (HAL `nvram`): the fiscal PIN and the intent of the
multi-step operation in progress.  Kept out of fiscal memory on purpose: the fiscal journal is public
(READ_JOURNAL), the PIN is not, and intents are scratch state.

Contract: get(key) -> bytes or None; put(key, value) durable and atomic when it returns; delete(key).
A board binds it to its MCU's protected storage (esp32 NVS, a littlefs file on rp2); the simulator to a
folder.  RamNvram is for tests and the factory state.
"""


class RamNvram:
    def __init__(self):
        self.data = {}

    def get(self, key):
        return self.data.get(key)

    def put(self, key, value):
        self.data[key] = bytes(value)

    def delete(self, key):
        if key in self.data:
            del self.data[key]
