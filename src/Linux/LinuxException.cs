using System.Runtime.InteropServices;

namespace Vmm.Linux;

/// <summary>A failed system call, carrying the errno so callers can branch on it instead of parsing text.</summary>
public sealed class LinuxException : IOException
{
    public LinuxException(string operation, int errno)
        : base($"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Operation = operation;
        Errno = errno;
    }

    public string Operation { get; }

    public int Errno { get; }

    /// <summary>Throws for the errno left by the last P/Invoke marked SetLastError.</summary>
    public static LinuxException FromLastError(string operation) => new(operation, Marshal.GetLastPInvokeError());
}
