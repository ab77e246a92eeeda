#!/usr/bin/env python3
"""Writes a VDI laid out as VirtualBox lays one out (VDICore.h, VirtualBox 4
and later): the 512-byte header (pre-header text, signature, version 1.1,
header size 0x190), the block map at 1 MiB, the data area at the next MiB
boundary after the map, every 1 MiB block of RAW allocated in guest order
(what VBoxManage convertfromraw writes for a disk without zero blocks).
    bench/vbox-vdi.py RAW OUT.vdi
"""
import os
import struct
import sys
import uuid

MIB = 1 << 20


def main(raw, out):
    size = os.path.getsize(raw)
    blocks = (size + MIB - 1) // MIB
    map_offset = MIB
    data_offset = map_offset + (blocks * 4 + MIB - 1) // MIB * MIB
    header = bytearray(512)
    text = b"<<< Oracle VM VirtualBox Disk Image >>>\n"
    header[0:len(text)] = text
    struct.pack_into("<IIII", header, 0x40, 0xbeda107f, 0x00010001, 0x190, 1)
    struct.pack_into("<II", header, 0x154, map_offset, data_offset)
    struct.pack_into("<I", header, 0x168, 512)
    struct.pack_into("<QIIII", header, 0x170, size, MIB, 0, blocks, blocks)
    header[0x188:0x198] = uuid.uuid4().bytes_le
    with open(out + ".tmp", "wb") as f:
        f.write(header)
        f.seek(map_offset)
        f.write(struct.pack("<%dI" % blocks, *range(blocks)))
        f.seek(data_offset)
        with open(raw, "rb") as r:
            while True:
                chunk = r.read(64 * MIB)
                if not chunk:
                    break
                f.write(chunk)
        # the last block is whole in the file, as VirtualBox allocates it
        f.truncate(data_offset + blocks * MIB)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
