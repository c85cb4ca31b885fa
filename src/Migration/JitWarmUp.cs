using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vmm.Migration;

/// <summary>
/// Compiles methods ahead of need. A VMM process usually migrates once, so without this the code of the switchover
/// (saving and loading vCPU and device state, the last records) is compiled the first time it runs, inside the
/// downtime: 13–16 ms of a cold process's postcopy downtime here, against under 1 ms once compiled.
/// </summary>
/// <remarks>
/// Preparing compiles at tier 0. The methods every page or record goes through (finding and clearing dirty bits, the
/// zero test, framing and checksumming records, placing pages) are marked AggressiveOptimization instead, with a
/// "per page" comment: compiled optimised at once, they never wait for tiering, whose call counting starts only
/// after 100 ms without new compilations and whose background recompiles of a few dozen methods (10–25 ms of a core)
/// otherwise landed inside a later migration's downtime on this 2-core host.
/// </remarks>
public static class JitWarmUp
{
    /// <summary>Compiles every method with a body of <paramref name="types"/> and their nested types (lambdas live there).</summary>
    public static void Prepare(params Type[] types)
    {
        foreach (Type type in types)
        {
            PrepareType(type);
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> (a <see cref="Prepare"/>, a rehearsal) on a thread-pool thread: the caller carries
    /// on, compilation is thread-safe. <paramref name="report"/> hears how long it took, or why it failed: a warm-up
    /// is an optimisation, and nothing else happens then (an exception escaping a thread-pool thread would end the
    /// process).
    /// </summary>
    public static void InBackground(Action work, Action<string> report) => ThreadPool.UnsafeQueueUserWorkItem(
        _ =>
        {
            try
            {
                long from = System.Diagnostics.Stopwatch.GetTimestamp();
                work();
                report($"warmed up for the migration in {System.Diagnostics.Stopwatch.GetElapsedTime(from).TotalMilliseconds:F1} ms");
            }
            catch (Exception e)
            {
                report($"warming up for the migration failed: {e.GetType().Name}: {e.Message}");
            }
        },
        null);

    private static void PrepareType(Type type)
    {
        if (type.ContainsGenericParameters)
        {
            return;
        }

        const BindingFlags Declared = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;
        foreach (MethodBase method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            if (method.IsAbstract || method.ContainsGenericParameters)
            {
                continue;
            }

            if ((method.Attributes & MethodAttributes.PinvokeImpl) != 0)
            {
                // A P/Invoke (the inner function [LibraryImport] generates): bind the native symbol and build the stub.
                Marshal.Prelink((MethodInfo)method);
            }
            else if (method.GetMethodBody() is not null)
            {
                RuntimeHelpers.PrepareMethod(method.MethodHandle);
            }
        }

        foreach (Type nested in type.GetNestedTypes(Declared))
        {
            PrepareType(nested);
        }
    }
}
