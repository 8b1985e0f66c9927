# Freeze manifest: build MicroPython with FROZEN_MANIFEST=/path/to/firmware/manifest.py to put the
# fiscal_till package into the board's flash as bytecode (main.py stays on the filesystem).
include("$(PORT_DIR)/boards/manifest.py")
metadata(description="Fiscal till firmware (GB 18240 税控收款机)", version="0.1.0")
package("fiscal_till")
