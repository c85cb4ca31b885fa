using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Vmm.Migration;

/// <summary>
/// TLS for a migration connection, in QEMU's shape (migrate-set-parameters `tls-creds`, `tls-hostname`, `tls-authz`):
/// <see cref="CredsDirectory"/> holds QEMU's x509 file names — `ca-cert.pem` (the CA both ends trust), `server-cert.pem`
/// and `server-key.pem` (the destination's), `client-cert.pem` and `client-key.pem` (the source's). Both ends verify
/// the other's certificate against that CA only, before a single record is read: the source also checks the
/// destination's name (<see cref="Hostname"/>, else the URI's host), the destination checks the source's certificate
/// subject against <see cref="Authz"/> when it is set.
/// </summary>
/// <param name="CredsDirectory">The credentials directory.</param>
/// <param name="Hostname">The name the destination's certificate must carry; null: the URI's host.</param>
/// <param name="Authz">The common names of the client certificates allowed to migrate in; empty: any the CA signed.</param>
public sealed record MigrationTls(string CredsDirectory, string? Hostname, IReadOnlyList<string> Authz)
{
    /// <summary>How long the handshake may take: a peer that stalls in it is not a migration.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Source: wraps <paramref name="network"/> in TLS as the client. Throws <see cref="MigrationFailedException"/>.</summary>
    public System.IO.Stream AuthenticateAsClient(System.IO.Stream network, string uriHost)
    {
        string host = Hostname ?? uriHost;
        X509Certificate2 ca = LoadCa();
        X509Certificate2 mine = Load("client");
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        try
        {
            ssl.AuthenticateAsClient(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                ClientCertificates = [mine],
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                    Verify(ca, certificate, errors, checkName: true, out _),
            });
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or System.ComponentModel.Win32Exception)
        {
            ssl.Dispose();
            throw new MigrationFailedException($"TLS: the destination's certificate did not verify for '{host}' against {Path.Combine(CredsDirectory, "ca-cert.pem")}, or the handshake failed: {e.Message}", e);
        }
    }

    /// <summary>Destination: wraps <paramref name="network"/> in TLS as the server; the source must present an allowed certificate.</summary>
    public System.IO.Stream AuthenticateAsServer(System.IO.Stream network)
    {
        X509Certificate2 ca = LoadCa();
        X509Certificate2 mine = Load("server");
        var ssl = new SslStream(network, leaveInnerStreamOpen: false);
        string? refusal = null;
        try
        {
            ssl.AuthenticateAsServer(new SslServerAuthenticationOptions
            {
                ServerCertificate = mine,
                ClientCertificateRequired = true,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (!Verify(ca, certificate, errors, checkName: false, out X509Certificate2? client))
                    {
                        refusal = "the source's certificate did not verify against the CA";
                        return false;
                    }

                    if (Authz.Count > 0 && !Authz.Contains(client!.GetNameInfo(X509NameType.SimpleName, forIssuer: false)))
                    {
                        refusal = $"the source's certificate '{PeerText.Name(client.Subject)}' is not in tls-authz";
                        return false;
                    }

                    return true;
                },
            });
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or System.ComponentModel.Win32Exception)
        {
            ssl.Dispose();
            throw new MigrationFailedException($"TLS: {refusal ?? $"the handshake with the source failed: {e.Message}"}", e);
        }
    }

    /// <summary>The chain must end at our CA (and only it); the name is .NET's check against the target host.</summary>
    private static bool Verify(X509Certificate2 ca, X509Certificate? presented, SslPolicyErrors errors, bool checkName, out X509Certificate2? certificate)
    {
        certificate = presented as X509Certificate2 ?? (presented is null ? null : X509CertificateLoader.LoadCertificate(presented.GetRawCertData()));
        if (certificate is null || (checkName && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0))
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    private X509Certificate2 LoadCa() => Read(() => X509CertificateLoader.LoadCertificateFromFile(Path.Combine(CredsDirectory, "ca-cert.pem")), "ca-cert.pem");

    /// <summary>A certificate with its key, from NAME-cert.pem and NAME-key.pem.</summary>
    private X509Certificate2 Load(string name) => Read(
        () =>
        {
            using X509Certificate2 pem = X509Certificate2.CreateFromPemFile(Path.Combine(CredsDirectory, $"{name}-cert.pem"), Path.Combine(CredsDirectory, $"{name}-key.pem"));

            // Through PKCS#12 once: a key from PEM is ephemeral, which TLS on some platforms will not use.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        },
        $"{name}-cert.pem and {name}-key.pem");

    private X509Certificate2 Read(Func<X509Certificate2> load, string what)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new MigrationFailedException($"TLS: cannot read {what} in tls-creds '{CredsDirectory}': {e.Message}", e);
        }
    }
}
