// Package microvm runs a static Go program as a minimal Linux microVM: QEMU's
// "microvm" machine, Debian's stock kernel, and an initramfs holding only
// an /init (bench/guests/microinit), the program as /app and the few kernel
// modules it needs. It is the "minimal Linux VM" peer of the benchmarks:
// what a user would build without Mote.
//
// A driver does three things:
//
//	bz, _, err := microvm.DefaultKernel() // newest /boot/vmlinuz-*
//	err = microvm.Kernel(bz, "out/vmlinux") // uncompressed ELF, cached
//	// /init is built from bench/guests/microinit; modules come with
//	// their dependencies from /lib/modules/VERSION.
//	err = microvm.Initramfs("out/initrd", "out/httpd", []string{"virtio_mmio", "virtio_net"})
//	cmd := microvm.Command(microvm.Config{
//		Kernel: "out/vmlinux", Initrd: "out/initrd", MemoryMiB: 256,
//		Net: microvm.NetUser, HostPort: 18080, GuestPort: 8080,
//		Args: []string{"-addr", ":8080"},
//	})
//
//	cmd.Stdout = os.Stdout
//	err = cmd.Start()
//
// The program's stdout and stderr arrive on QEMU's stdout (the serial
// console, byte for byte: /init turns off the tty's \n to \r\n), mixed
// with kernel messages at error level; when the program exits, /init
// powers the VM off and QEMU exits. The tests (MOTE_MICROVM_TESTS=1) boot
// examples/hello and examples/httpd; TestMeasure (MOTE_MICROVM_MEASURE=1)
// prints the benchmark's numbers.
//
// Facts that shaped it (measured on the project's machines, a nested
// kvm-pvm host):
//
//   - Linux does not boot under that KVM, so QEMU runs the guest under TCG
//     (-accel tcg -cpu max). The kernel then needs tsc_early_khz=<host TSC
//     kHz> on its command line, or its TSC calibration never ends; TCG's
//     guest TSC is the host's TSC, so HostTSCkHz gives the value.
//   - QEMU boots an ELF vmlinux through its PVH note, skipping seconds of
//     emulated XZ decompression of a bzImage; Kernel extracts that ELF.
//     Debian compresses the kernel with XZ and the x86 BCJ filter, which
//     github.com/ulikunitz/xz does not implement, so this package reads the
//     .xz container and undoes the BCJ filter itself and uses that library's
//     LZMA2 decoder; the block's CRC32 checks the result.
//   - Debian builds virtio, virtio_mmio and virtio_net as modules and does
//     not set CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: the microvm machine must
//     describe its virtio-mmio devices in ACPI (acpi=on), and /init loads
//     the modules (Initramfs resolves their dependencies from modules.dep).
package microvm
