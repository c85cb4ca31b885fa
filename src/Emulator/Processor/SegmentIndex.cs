namespace Vmm.Emulator.Processor;

/// <summary>The segment registers in x86 encoding order (the sreg field of a ModRM byte).</summary>
public static class SegmentIndex
{
    public const int Es = 0;
    public const int Cs = 1;
    public const int Ss = 2;
    public const int Ds = 3;
    public const int Fs = 4;
    public const int Gs = 5;

    public const int Count = 6;

    public static string Name(int index) => index switch
    {
        Es => "ES",
        Cs => "CS",
        Ss => "SS",
        Ds => "DS",
        Fs => "FS",
        Gs => "GS",
        _ => $"sreg{index}",
    };
}
