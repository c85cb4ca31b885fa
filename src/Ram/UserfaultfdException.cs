using Vmm.Linux.Userfaultfd;

namespace Vmm.Ram;

/// <summary>userfaultfd cannot be used as asked: it cannot be opened, or the kernel lacks features the caller requires.</summary>
public sealed class UserfaultfdException : Exception
{
    public UserfaultfdException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    public UserfaultfdException(UffdFeatures missing, UffdFeatures available)
        : base($"userfaultfd on this kernel lacks required feature(s) {Describe(missing)}; it offers {Describe(available)}")
    {
        MissingFeatures = missing;
    }

    /// <summary>The required features the kernel did not offer; None when the failure was something else.</summary>
    public UffdFeatures MissingFeatures { get; }

    /// <summary>Names each set bit: the enum name where there is one, the bit number otherwise.</summary>
    public static string Describe(UffdFeatures features)
    {
        if (features == UffdFeatures.None)
        {
            return "none";
        }

        var names = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            var flag = (UffdFeatures)(1ul << bit);
            if ((features & flag) != 0)
            {
                names.Add(Enum.IsDefined(flag) ? flag.ToString() : $"bit {bit} (0x{1ul << bit:x})");
            }
        }

        return string.Join(", ", names);
    }
}
