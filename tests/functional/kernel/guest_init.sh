#!/bin/busybox sh
# /init of the kernel-harness guest (busybox).  Parameters come on the
# kernel command line:
#   pt.nonce=N   marks our result line so a script cannot forge it
#   pt.ctl=DIR   host dir (seen through the 9p root share) holding run.sh
#   pt.out=DIR   host dir shared back writable; mounted at the same path
# It loads the modules in /etc/modules.load, mounts the host root read-only
# (9p) under a tmpfs overlay at /host, and runs DIR/run.sh chrooted there.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
param() { sed -n "s/.* pt\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
NONCE=$(param nonce)
CTL=$(param ctl)
OUT=$(param out)
up() { cut -d' ' -f1 /proc/uptime; }
finish() {
    echo "PT-HARNESS-RC $NONCE $1 uptime=$(up)"
    echo "PT-HARNESS: kernel log follows"
    dmesg
    sync
    poweroff -f
    sleep 30
}
echo "PT-HARNESS: init on $(uname -r), uptime $(up)s"
for m in $(cat /etc/modules.load); do
    modprobe "$m" || echo "PT-HARNESS: modprobe $m failed"
done
mkdir -p /lower /ovl /host
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose \
        hostroot /lower; then
    echo "PT-HARNESS: cannot mount the host root share"
    finish 125
fi
mount -t tmpfs -o mode=0755 tmpfs /ovl
mkdir -p /ovl/up /ovl/work
if mount -t overlay overlay \
        -o lowerdir=/lower,upperdir=/ovl/up,workdir=/ovl/work /host; then
    echo "PT-HARNESS: host root on overlay (writable, changes stay in RAM)"
else
    echo "PT-HARNESS: overlay failed; host root read-only"
    mount --bind /lower /host
fi
for fs in proc sys dev; do
    mkdir -p "/host/$fs"
    mount --rbind "/$fs" "/host/$fs"
done
# The guest kernel's modules replace the host's, so modprobe in the chroot
# finds them (the indexes were made by depmod when the image was built).
if mkdir -p /host/lib/modules 2>/dev/null; then
    mount --bind /lib/modules /host/lib/modules
fi
mkdir -p "/host$OUT"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 \
        outshare "/host$OUT"; then
    echo "PT-HARNESS: cannot mount the out share"
    finish 125
fi
echo "PT-HARNESS: running $CTL/run.sh, uptime $(up)s"
# Keep kernel messages off the console while the script runs, so its
# output is clean; the whole kernel log is printed after the result.
echo 1 > /proc/sys/kernel/printk
chroot /host /bin/sh "$CTL/run.sh" </dev/null 2>&1
finish $?
