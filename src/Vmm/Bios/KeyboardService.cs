using Vmm.Devices;

namespace Vmm.Bios;

/// <summary>
/// int 16h, fed by COM1's input (stdin with --serial stdio): read key (AH=00h/10h) waits for one, check key
/// (AH=01h/11h) answers ZF, shift flags (AH=02h/12h) are all clear, store key (AH=05h) queues CL. A terminal sends LF
/// for Enter and DEL for Backspace; a PC keyboard gives CR and BS, so those two are translated. The scan code in AH is
/// the one of the key that makes the character where it matters (Enter, Backspace, Escape), else 0.
/// </summary>
public sealed class KeyboardService(Uart16550 serial)
{
    /// <summary>Returns false when the call must wait for input (the stub HLTs until an interrupt and calls again).</summary>
    public bool Handle(BiosFrame f)
    {
        switch (f.AH)
        {
            case 0x00 or 0x10:
                if (!serial.TryTakeInput(out byte key))
                {
                    return false;
                }

                f.AX = Translate(key);
                return true;
            case 0x01 or 0x11:
                if (serial.TryPeekInput(out byte next))
                {
                    f.AX = Translate(next);
                    f.Zero = false;
                }
                else
                {
                    f.Zero = true;
                }

                return true;
            case 0x02 or 0x12:
                f.AX = 0;
                return true;
            case 0x05:
                serial.EnqueueInput([f.CL]);
                f.AL = 0;
                return true;
            default:
                return true;
        }
    }

    private static ushort Translate(byte c) => c switch
    {
        (byte)'\n' or (byte)'\r' => 0x1C0D,
        0x7F or 0x08 => 0x0E08,
        0x1B => 0x011B,
        _ => c,
    };
}
