namespace Vmm.Ram;

/// <summary>
/// The memory a RAM block asks for cannot be provided (too few huge pages, no hugetlbfs at a path …). The message is
/// written for the person starting the VMM and says how to fix the host.
/// </summary>
public sealed class RamBackendException : Exception
{
    public RamBackendException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
