using Vmm.Devices;
using Vmm.Ram;

namespace Vmm.Bios;

/// <summary>
/// The VMM side of the BIOS: ports 0xB00–0xBFF, one per interrupt vector. A stub's 32-bit OUT carries the SS:SP of
/// the caller's register frame (<see cref="BiosFrame"/>); the service for that vector runs here, on the vCPU thread,
/// and edits the frame; the stub's IN of the same port then says whether to return (0) or to wait for an interrupt
/// and call again (1: int 16h with no key yet). Written once for both accelerators: nothing here reads or sets vCPU
/// registers. Its state section carries the disk (the guest's writes to it included).
/// </summary>
public sealed class BiosServices : IPortDevice, IStatefulDevice
{
    public const int StateVersion = 1;

    private readonly BiosMemory memory;
    private readonly VideoService video;
    private readonly KeyboardService keyboard;
    private readonly SystemServices system;
    private readonly ClockService clock;
    private readonly Action<string> log;
    private DiskService disk;
    private BootDisk bootDisk;
    private bool waitRequested;

    public BiosServices(BiosMemory memory, Uart16550 uart, ISerialSink serial, RamBlockRegistry ram, Action<string> log)
    {
        this.memory = memory;
        this.log = log;
        video = new VideoService(memory, serial);
        keyboard = new KeyboardService(uart);
        system = new SystemServices(memory, ram);
        clock = new ClockService(memory);
        bootDisk = new BootDisk([], writeThroughPath: null);
        disk = new DiskService(memory, bootDisk);
    }

    public string SectionName => "bios";

    public int SectionVersion => StateVersion;

    /// <summary>Disk 0x80 (the guest image).</summary>
    public BootDisk Disk
    {
        get => bootDisk;
        set
        {
            bootDisk = value;
            disk = new DiskService(memory, value);
        }
    }

    public void Read(ushort offset, Span<byte> data)
    {
        data.Clear();
        data[0] = waitRequested ? (byte)1 : (byte)0;
    }

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 4)
        {
            return;
        }

        uint stack = global::System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(data);
        ulong address = BiosMemory.Linear((ushort)(stack >> 16), (ushort)stack);
        Span<byte> raw = stackalloc byte[BiosFrame.Size];
        memory.Read(address, raw);
        BiosFrame frame = BiosFrame.Parse(raw);
        waitRequested = !Dispatch(offset, frame);
        frame.WriteTo(raw);
        memory.Write(address, raw);
    }

    /// <summary>Runs the service of <paramref name="vector"/>; false when the stub must wait for an interrupt and call again.</summary>
    private bool Dispatch(int vector, BiosFrame f)
    {
        switch (vector)
        {
            case 0x10:
                video.Handle(f);
                return true;
            case 0x11:
                system.Equipment(f);
                return true;
            case 0x12:
                system.BaseMemory(f);
                return true;
            case 0x13:
                disk.Handle(f);
                return true;
            case 0x15:
                system.System(f);
                return true;
            case 0x16:
                return keyboard.Handle(f);
            case 0x18:
                log("int 18h: no bootable device; the guest is powered off");
                return false;
            case 0x19:
                Reboot(f);
                return true;
            case 0x1A:
                clock.Handle(f);
                return true;
            default:
                f.Carry = true;
                return true;
        }
    }

    /// <summary>int 19h: load the first sector at 0000:7C00 again and return into it with DL = 0x80.</summary>
    private void Reboot(BiosFrame f)
    {
        memory.Write(0x7C00, bootDisk.BootSector, mayHoldCode: true);
        f.Cs = 0;
        f.Ip = 0x7C00;
        f.Ds = f.Es = 0;
        f.Edx = 0x80;
    }

    public byte[] SaveState()
    {
        var w = new DeviceStateWriter(bootDisk.BootSector.Length + 16);
        bootDisk.Save(w);
        return w.ToArray();
    }

    public void RestoreState(int version, ReadOnlySpan<byte> state)
    {
        DeviceStateReader.RequireVersion(SectionName, StateVersion, version);
        var r = new DeviceStateReader(SectionName, state);
        var restored = new BootDisk([], writeThroughPath: null);
        restored.Load(ref r);
        r.EnsureFullyRead();
        Disk = restored;
    }
}
