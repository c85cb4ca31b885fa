using System.Buffers.Binary;

namespace Vmm.Devices;

/// <summary>
/// QEMU's <c>isa-debug-exit</c>: a guest write of value v ends the VMM with exit status <c>(v &lt;&lt; 1) | 1</c>.
/// </summary>
/// <remarks>
/// Test guests use it to report pass/fail without a console. The shift-and-set-bit-0 convention means a guest can
/// never produce status 0, so "the guest asked to exit" is always distinguishable from a clean power-off (HLT).
/// As in QEMU, the whole written value counts and the offset does not: a 1-, 2- or 4-byte write of v anywhere in the
/// device's range exits. Other widths do not exist for x86 port I/O and are ignored.
/// </remarks>
public sealed class DebugExit : IPortDevice, IStatefulDevice
{
    public const ushort DefaultPort = 0xF4;
    public const int StateVersion = 1;

    private readonly Action<int> _onExit;

    /// <param name="onExit">
    /// Called with the exit status, from the vCPU thread that made the write. The VMM decides how to stop.
    /// </param>
    public DebugExit(Action<int> onExit)
        : this(onExit, DefaultPort)
    {
    }

    /// <param name="port">Where the VMM registers this device; only used to name the state section.</param>
    public DebugExit(Action<int> onExit, ushort port)
    {
        ArgumentNullException.ThrowIfNull(onExit);
        _onExit = onExit;
        SectionName = $"isa-debug-exit@0x{port:x}";
    }

    public string SectionName { get; }

    public int SectionVersion => StateVersion;

    /// <summary>
    /// <c>(v &lt;&lt; 1) | 1</c> in 32 bits, wrapping like QEMU's C arithmetic. Linux only passes the low 8 bits of
    /// an exit status to the parent, so guests that want a meaningful status write v in 0..127.
    /// </summary>
    public static int ExitStatusFor(uint value) => unchecked((int)((value << 1) | 1));

    public void Read(ushort offset, Span<byte> data) => data.Fill(0xFF);

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        uint value;
        switch (data.Length)
        {
            case 1:
                value = data[0];
                break;
            case 2:
                value = BinaryPrimitives.ReadUInt16LittleEndian(data);
                break;
            case 4:
                value = BinaryPrimitives.ReadUInt32LittleEndian(data);
                break;
            default:
                return;
        }

        _onExit(ExitStatusFor(value));
    }

    /// <summary>The device has no registers; the section exists so that every device is accounted for in a migration.</summary>
    public byte[] SaveState() => [];

    public void RestoreState(int version, ReadOnlySpan<byte> state)
    {
        DeviceStateReader.RequireVersion(SectionName, StateVersion, version);
        new DeviceStateReader(SectionName, state).EnsureFullyRead();
    }
}
