using Vmm.Devices;
using Vmm.Linux;

namespace Vmm.Serial;

/// <summary>Feeds the VMM's stdin to the UART's receive side from a background thread until end of input.</summary>
public static unsafe class StdinPump
{
    public static void Start(Uart16550 uart)
    {
        var thread = new Thread(() =>
        {
            byte* buffer = stackalloc byte[256];
            while (true)
            {
                nint read = Unistd.Read(0, buffer, 256);
                if (read <= 0)
                {
                    return;
                }

                uart.EnqueueInput(new ReadOnlySpan<byte>(buffer, (int)read));
            }
        })
        { IsBackground = true, Name = "stdin" };
        thread.Start();
    }
}
