namespace Vmm.Devices.Interrupts;

/// <summary>
/// Port 0x61 (system control port B): bit 0 is the PIT channel 2 gate, bit 1 the speaker enable (kept, silent),
/// bit 4 the refresh toggle that old delay loops watch (flips on every read), bit 5 channel 2's output.
/// </summary>
public sealed class SystemControlPort(Pit8254 pit) : IPortDevice
{
    public const ushort Port = 0x61;

    private byte speaker;
    private bool refresh;

    public void Read(ushort offset, Span<byte> data)
    {
        data.Fill(0xFF);
        refresh = !refresh;
        data[0] = (byte)((pit.Channel2Gate ? 1 : 0) | speaker | (refresh ? 0x10 : 0) | (pit.Channel2Output ? 0x20 : 0));
    }

    public void Write(ushort offset, ReadOnlySpan<byte> data)
    {
        if (data.Length > 0)
        {
            speaker = (byte)(data[0] & 0x02);
            pit.SetChannel2Gate((data[0] & 0x01) != 0);
        }
    }
}
