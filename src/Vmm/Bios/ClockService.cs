namespace Vmm.Bios;

/// <summary>
/// int 1Ah: the tick count the BIOS's IRQ 0 handler keeps at 0040:006C (AH=00h read, clearing the midnight flag;
/// 01h set) and the real-time clock, read from the host's clock (02h time, 04h date, BCD). Setting the RTC is
/// accepted and ignored: the host owns the clock.
/// </summary>
public sealed class ClockService(BiosMemory memory)
{
    public void Handle(BiosFrame f)
    {
        DateTime now = DateTime.Now;
        switch (f.AH)
        {
            case 0x00:
                uint ticks = memory.ReadDword(BiosDataArea.Ticks);
                f.CX = (ushort)(ticks >> 16);
                f.DX = (ushort)ticks;
                f.AL = memory.ReadByte(BiosDataArea.MidnightFlag);
                memory.WriteByte(BiosDataArea.MidnightFlag, 0);
                break;
            case 0x01:
                memory.WriteDword(BiosDataArea.Ticks, ((uint)f.CX << 16) | f.DX);
                memory.WriteByte(BiosDataArea.MidnightFlag, 0);
                break;
            case 0x02:
                f.CH = Bcd(now.Hour);
                f.CL = Bcd(now.Minute);
                f.DH = Bcd(now.Second);
                f.DL = 0;
                f.Carry = false;
                break;
            case 0x04:
                f.CH = Bcd(now.Year / 100);
                f.CL = Bcd(now.Year % 100);
                f.DH = Bcd(now.Month);
                f.DL = Bcd(now.Day);
                f.Carry = false;
                break;
            case 0x03 or 0x05:
                f.Carry = false;
                break;
            default:
                f.Carry = true;
                break;
        }
    }

    /// <summary>Ticks since midnight for <paramref name="now"/>, as POST sets the count from the RTC.</summary>
    public static uint TicksSinceMidnight(DateTime now) => (uint)(now.TimeOfDay.TotalSeconds * 1193182.0 / 65536.0);

    private static byte Bcd(int value) => (byte)(((value / 10) << 4) | (value % 10));
}
